"""`otsensor serve DIR`: a local web console over an output directory (map, inventory, alerts, baseline, health).

Data access goes through one small interface (:class:`store.Store`); :class:`store.DirStore` reads the files
`otsensor analyze` and `otsensor run` write, and follows them as they change.
"""
