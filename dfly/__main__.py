from dfly.cli import main

main()
