from hl7lake.cli import main

raise SystemExit(main())
