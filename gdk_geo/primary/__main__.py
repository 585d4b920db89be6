"""`python -m gdk_geo.primary`: run the primary's Geo service."""

import sys

from gdk_geo.primary.app import main

sys.exit(main())
