import sys

from orchestration.cli.main import main

sys.exit(main())
