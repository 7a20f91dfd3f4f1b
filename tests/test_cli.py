import subprocess
import sys

from flows.cli import main


def test_main_without_command_prints_help(capsys):
    assert main([]) == 0
    assert "mnist-flow" in capsys.readouterr().out


def test_console_script_help_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: mnist-flow" in proc.stdout
