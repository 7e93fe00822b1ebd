from jax_llm.cli import main

raise SystemExit(main())
