"""One module per tab of the Space, each holding its own layout, wiring and handlers (see `clipdemo.ui.app`)."""
