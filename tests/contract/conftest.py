import sys
from pathlib import Path

# Let the tests import the cluster helper beside them.
sys.path.insert(0, str(Path(__file__).parent))
