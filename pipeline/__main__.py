"""`python -m pipeline STAGE [options]`: see pipeline/cli.py."""
from pipeline.cli import main

if __name__ == "__main__":
    main()
