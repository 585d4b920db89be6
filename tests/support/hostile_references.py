"""Repository names, tags and digests nobody well-meaning would send, and one valid digest.

Shared by the hostile-input tests of the primary service: the real server must reject each
of them, and the random notifications of the fuzz tests are spoiled with them.
"""

DIGEST = "sha256:" + "0123456789abcdef" * 4

HOSTILE_REPOSITORIES = [
    "..",
    "../etc/passwd",
    "group/../app",
    "/group/app",
    "group/app/",
    "group//app",
    "Group/App",
    "GROUP",
    "group/app:v1",
    "group/app@sha256:00",
    "group app",
    "group/app\n",
    "group/app\x00",
    "-group/app",
    "group/app-",
    "group/.app",
    "group/_app",
    "gröup/app",
    "group/app%2F..",
    "a" * 256,
    "/".join(["a"] * 128) + "/a",
    "",
]

HOSTILE_TAGS = [".v1", "-v1", "v1/evil", "v 1", "v1\n", "t" * 129, "ü", "v1:latest"]
HOSTILE_DIGESTS = [
    "sha256:" + "0" * 63,
    "sha256:" + "G" * 64,
    "SHA256:" + "0" * 64,
    "sha256" + "0" * 64,
    "sha256:" + "0" * 64 + "\n",
    ":" + "0" * 64,
    "md5:00",
]
