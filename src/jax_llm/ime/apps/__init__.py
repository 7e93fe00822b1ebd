"""What a writer uses: the typing state (`composer`), the terminal (`terminal`), the web server and its
page (`serve`, `static/`), and the user dictionary (`userdict`)."""
