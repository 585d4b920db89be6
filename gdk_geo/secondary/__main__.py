"""`python -m gdk_geo.secondary`: run the secondary's Geo worker."""

import sys

from gdk_geo.secondary.worker import main

sys.exit(main())
