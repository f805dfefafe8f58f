"""Capture and restore of the parts of an IPython session: namespace, history, preferences, layout.

Each module takes plain data (a namespace dict, cell sources, a shell where it must) and returns
records from :mod:`ipysession.model`; :mod:`ipysession.session.manager` decides when to call them
and the store decides where the bytes go.
"""
