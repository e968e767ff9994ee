from qperf_viewer.cli import main

raise SystemExit(main())
