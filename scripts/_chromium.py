"""Headless Chromium flags shared by the screenshot scripts (Debian's ``chromium`` package):
no sandbox, GPU or network side traffic, and no scrollbars in the picture."""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
]
