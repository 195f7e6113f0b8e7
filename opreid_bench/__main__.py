from opreid_bench.cli import main

main()
