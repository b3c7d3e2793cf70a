"""The region map (``region2MaskValueMap.txt``): parse, validate, write, match names.

Import and export to other label formats live in :mod:`segmap.labelmap.formats`.
"""

from segmap.labelmap.model import Region, RegionMap
from segmap.labelmap.names import normalise_name
from segmap.labelmap.parse import decode_region_map_bytes, parse_region_map, read_region_map
from segmap.labelmap.problems import MapProblem, RegionMapError, RegionMapFileError

__all__ = [
    "MapProblem",
    "Region",
    "RegionMap",
    "RegionMapError",
    "RegionMapFileError",
    "decode_region_map_bytes",
    "normalise_name",
    "parse_region_map",
    "read_region_map",
]
