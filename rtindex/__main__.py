from rtindex.cli import main

raise SystemExit(main())
