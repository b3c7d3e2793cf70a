"""A stable palette for formats that need a colour per label value and got none.

Written here rather than taken from a library because the need is small and the rule must
never change between versions: a value's colour depends on the value alone, so the same
region gets the same colour in every map, every export and every run.

Hue steps around the colour wheel by the golden ratio per value, which keeps consecutive
values (1, 2, 3...) and round values (10, 20, 30...) far apart in hue; saturation and
brightness alternate as well, so values whose hues happen to land close still differ.
"""

from __future__ import annotations

import colorsys

RGBA = tuple[int, int, int, int]
"""A colour as red, green, blue, alpha, each 0..255."""

_GOLDEN = 0.6180339887498949
_SATURATION = (0.80, 0.55, 0.95)
_BRIGHTNESS = (0.95, 0.75)


def colour_for_value(value: int) -> RGBA:
    """The palette colour of mask value ``value`` (1..65535), fully opaque."""
    hue = (value * _GOLDEN) % 1.0
    saturation = _SATURATION[value % 3]
    brightness = _BRIGHTNESS[(value // 3) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, brightness)
    return (round(r * 255), round(g * 255), round(b * 255), 255)
