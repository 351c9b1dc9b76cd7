from salova_cli.main import run

run()
