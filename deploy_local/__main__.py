import sys

from deploy_local.run import main

sys.exit(main())
