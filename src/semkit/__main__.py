from semkit.cli import main

main()
