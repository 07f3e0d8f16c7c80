from o2a.cli import run

run()
