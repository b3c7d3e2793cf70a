"""Quality checks of a dataset before training: volumes, outliers, missing regions,
unexpected values, agreement between collections of one scan, and skipped names.

:mod:`.robust` scores outliers, :mod:`.agreement` compares two masks, :mod:`.casestats`
measures one case, :mod:`.report` assembles the report (JSON) and :mod:`.plots` draws one
picture per region with Pillow.
"""
