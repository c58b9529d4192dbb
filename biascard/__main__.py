from biascard.cli import main

raise SystemExit(main())
