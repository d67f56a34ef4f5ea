from plasticlab.cli import main

raise SystemExit(main())
