"""The napari plugin of dps (npe2 manifest ``napari.yaml``).

- reader: a stage's OME-Zarr (``results/<ds>/<level>/final/<stage>.ome.zarr``, a collection
  of fields of view or one NGFF image), a stage's Zarr intermediate, or a run's results folder
  (every final stage under it): one image layer per stage, named ``<ds>/<level>/<stage>``, at
  the stored pixel size (µm), with the stage's rows of ``results/<ds>/metrics.tsv`` in its
  metadata;
- widget ``dps restore``: the DPS chain (:func:`dps_stages.chain.restore`) on an image layer,
  image by image with a progress bar, the result added at its pixel size.

napari itself is the optional extra ``napari`` (``pip install -e '.[napari]'``); the reader and
the widget's function run without a Qt binding (``napari.components.ViewerModel``). The
modules are imported by napari when used (``_reader``, ``_widget``), not here.
"""
