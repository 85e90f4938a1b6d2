from contain.cli import main

raise SystemExit(main())
