import sys

if sys.argv[1:2] == ["fanout"]:
    from .fanout import main as fanout

    sys.exit(fanout(sys.argv[2:]))

from .run import main

sys.exit(main())
