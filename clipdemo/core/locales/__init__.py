"""The UI's strings, one module per language (`en`, `tr`), each a flat `STRINGS` dict of key -> text.

A `{}` in a string is a place a value fills, in order (`clipdemo.core.words.text`); both languages have the same
keys and the same number of places in each (a test checks it). Label names are never translated.
"""
