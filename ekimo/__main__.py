from ekimo.cli import main

main()
