"""``python3 -m tests.oned_double``: run the oned TEST DOUBLE (not oned)."""
import sys

from tests.oned_double.server import main

sys.exit(main())
