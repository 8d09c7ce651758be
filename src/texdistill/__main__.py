from texdistill.cli import main

raise SystemExit(main())
