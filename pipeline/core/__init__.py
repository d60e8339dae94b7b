"""The pure core: no file I/O, no params file, no DVC, no CLI. Data in, data out."""
