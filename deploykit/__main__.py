from deploykit.cli.app import main

main()
