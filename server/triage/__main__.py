from triage._cli import main

raise SystemExit(main())
