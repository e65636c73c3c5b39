"""The watch folder: detect -> settle -> claim -> enqueue -> reconcile.

It enqueues `cutout.remove` by name and never imports the engine.
"""
