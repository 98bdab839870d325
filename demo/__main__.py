from demo.session import main

raise SystemExit(main())
