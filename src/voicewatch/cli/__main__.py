"""``python -m voicewatch.cli``: the same as the ``voicewatch`` command."""

from voicewatch.cli import main

main()
