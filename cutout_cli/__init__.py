"""The `cutout` command line: one module per subcommand, wired together in `main`.

The top of the import graph (engine <- settings <- worker <- watcher <- CLI): a package of
its own beside the engine, so that `import cutout` never loads click, Celery or the watcher,
and named `cutout_cli` so that it cannot collide with another distribution's `cli` in
site-packages. The console script is still `cutout`; `python -m cutout_cli` is the same.
"""
