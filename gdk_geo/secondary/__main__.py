"""`python -m gdk_geo.secondary`: run the secondary's Geo worker."""

import sys

from gdk_geo.secondary.process import main

sys.exit(main())
