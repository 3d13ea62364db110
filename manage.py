#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration.settings")
    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        # Ctrl-C while a command starts or runs (`make run` stops its children so, maybe while one
        # is still importing Django): stop quietly, with the shell's exit code for SIGINT.
        sys.exit(130)


if __name__ == "__main__":
    main()
