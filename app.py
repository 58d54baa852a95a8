"""Hugging Face Space entry point: `python app.py` serves the clipdemo Gradio app."""

from clipdemo.ui import main

if __name__ == "__main__":
    main()
