"""rnnbench's Hydra configs. Installed as the package `bench.conf` (pyproject.toml's package-dir),
so that an installed rnnbench finds them from any folder (bench.run.CONF_DIR)."""
