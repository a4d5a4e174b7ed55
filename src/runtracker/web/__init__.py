"""The web dashboard (`pip install 'runtracker[web]'`, `runtracker serve`): Starlette, Jinja2 and uvicorn.

Nothing here is imported by `import runtracker` or by a pipeline. `create_app` is in `runtracker.web.app`;
this package's own import loads nothing (the CLI's `runtracker user` uses `runtracker.web.passwords` alone).
"""
