"""Wall time and peak memory of the toy demo (or of any command).

Runs the command as a child process and, when it ends, prints:

- its wall time;
- the peak resident set size of the *largest single process* among the
  command and the descendants it waited for, from
  ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (this script starts no other
  child). It is exact, whatever the timing, but it is not a total: two
  processes of 1 GiB each report 1 GiB;
- the peak *total* RSS of the process tree (the command and all its live
  descendants), from ``/proc`` sampled every ``--interval`` seconds
  (Linux only). Spikes shorter than the interval can be missed, and pages
  shared between processes count once per process.

The exit status of the command is this script's (128 + N when a signal N
ended it), after the summary. By default the command is
``python tools/demo.py``; arguments after ``--`` are appended to it.
``--command`` replaces it (split like a shell line).

Examples::

    python tools/analysis_tools/profile_demo.py
    python tools/analysis_tools/profile_demo.py -- --stage1-iters 100 \\
        --stage2-iters 50 --work-dir work_dirs/demo_quick
    python tools/analysis_tools/profile_demo.py --json work_dirs/demo.json
    python tools/analysis_tools/profile_demo.py \\
        --command "python tools/train.py configs/toy/pading_toy_stage1.py"
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import resource
import shlex
import subprocess
import sys
import threading
import time

DEMO = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo.py')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after `--` belongs to the command, even `--json`.
    passthrough: list[str] = []
    if '--' in argv:
        split = argv.index('--')
        argv, passthrough = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(
        description='Wall time and peak RSS of a command (default: the '
        'toy demo). Arguments after -- are appended to the command.',
        usage='%(prog)s [-h] [--command CMD] [--interval S] [--json FILE] '
        '[-- ARGS ...]')
    parser.add_argument(
        '--command',
        help='command line to run instead of "python tools/demo.py" '
        '(split like a shell line)')
    parser.add_argument(
        '--interval',
        type=float,
        default=0.5,
        help='seconds between samples of the process tree\'s total RSS')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error('--interval must be positive')
    if args.command is not None:
        command = shlex.split(args.command)
        if not command:
            parser.error('--command is empty')
    else:
        command = [sys.executable, DEMO]
    args.argv = command + passthrough
    return args


# ------------------------------------------------------------------ /proc
def _parent_and_rss(pid: int, page_size: int) -> tuple[int, int] | None:
    """(parent pid, resident bytes) of a live process, None if gone."""
    try:
        with open(f'/proc/{pid}/stat') as file:
            stat = file.read()
        with open(f'/proc/{pid}/statm') as file:
            resident_pages = int(file.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    # The name (field 2) may hold spaces or parentheses: parse after it.
    fields = stat[stat.rindex(')') + 2:].split()
    return int(fields[1]), resident_pages * page_size


def tree_rss(root: int, page_size: int) -> tuple[int, int]:
    """Total RSS in bytes and number of processes of ``root``'s tree."""
    processes = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            info = _parent_and_rss(int(entry), page_size)
            if info is not None:
                processes[int(entry)] = info
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    total, count, pending = 0, 0, [root]
    while pending:
        pid = pending.pop()
        if pid in processes:
            total += processes[pid][1]
            count += 1
        pending.extend(children.get(pid, []))
    return total, count


class TreeSampler(threading.Thread):
    """Samples the total RSS of a process tree until stopped.

    Args:
        root (int): Process id of the tree's root.
        interval (float): Seconds between samples.
    """

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self.max_processes = 0
        self.samples = 0
        self.available = osp.isdir('/proc/self')
        self._stop_event = threading.Event()
        self._page_size = os.sysconf('SC_PAGE_SIZE')

    def run(self) -> None:
        if not self.available:
            return
        while True:
            total, count = tree_rss(self.root, self._page_size)
            if count:  # the root is still alive (or not yet reaped)
                self.samples += 1
                self.peak_bytes = max(self.peak_bytes, total)
                self.max_processes = max(self.max_processes, count)
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# ------------------------------------------------------------------- main
def _max_rss_bytes(usage: resource.struct_rusage) -> int:
    # Linux reports KiB, macOS bytes. (mmpading.utils.benchmarking has the
    # same; this script stays free of torch imports, it only launches.)
    return usage.ru_maxrss if sys.platform == 'darwin' else \
        usage.ru_maxrss * 1024


def profile(argv: list[str], interval: float) -> dict:
    """Run ``argv`` and measure it.

    Returns:
        dict: ``command``, ``returncode`` (negative: killed by that
        signal), ``wall_s``, ``max_rss_largest_process_bytes``,
        ``peak_tree_rss_bytes`` (None without ``/proc``),
        ``tree_samples``, ``max_processes`` and ``interval_s``.
    """
    start = time.perf_counter()
    try:
        process = subprocess.Popen(argv)
    except OSError as error:
        raise OSError(f'cannot run {shlex.join(argv)}: {error}') from error
    sampler = TreeSampler(process.pid, interval)
    sampler.start()
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the command too: let it finish.
        returncode = process.wait()
    wall = time.perf_counter() - start
    sampler.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return dict(
        command=shlex.join(argv),
        returncode=returncode,
        wall_s=wall,
        max_rss_largest_process_bytes=_max_rss_bytes(usage),
        peak_tree_rss_bytes=(sampler.peak_bytes
                             if sampler.available and sampler.samples else
                             None),
        tree_samples=sampler.samples,
        max_processes=sampler.max_processes,
        interval_s=interval)


def exit_status(returncode: int) -> int:
    """The shell's convention: 128 + N for a command killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def print_summary(result: dict) -> None:
    mib = 2**20
    print(f'\ncommand: {result["command"]}')
    print(f'exit status: {exit_status(result["returncode"])}')
    print(f'wall time: {result["wall_s"]:.2f} s')
    print('peak RSS, largest single process (getrusage RUSAGE_CHILDREN '
          f'ru_maxrss): {result["max_rss_largest_process_bytes"] / mib:.1f}'
          ' MiB')
    if result['peak_tree_rss_bytes'] is None:
        why = ('the command ended before the first sample'
               if osp.isdir('/proc/self') else 'needs /proc')
        print(f'peak total RSS of the process tree: n/a ({why})')
    else:
        print('peak total RSS of the process tree (sampled every '
              f'{result["interval_s"]:g} s, {result["tree_samples"]} '
              f'samples, up to {result["max_processes"]} processes): '
              f'{result["peak_tree_rss_bytes"] / mib:.1f} MiB')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = profile(args.argv, args.interval)
    except OSError as error:
        print(f'error: {error}', file=sys.stderr)
        return 127
    print_summary(result)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(result, file, indent=2)
        print(f'figures written to {args.json}')
    return exit_status(result['returncode'])


if __name__ == '__main__':
    sys.exit(main())
