"""`telerad simulate`: a reading day generated (or read from CSV), replayed through the
real routing engine and worklist beside a first-in-first-out baseline, and measured.

* :mod:`~telerad.simulation.scenario` generates the day (arrivals, roster) and
  :mod:`~telerad.simulation.staffing` staffs the roster the way a network would;
* :mod:`~telerad.simulation.trace` reads and writes days as CSV;
* :mod:`~telerad.simulation.replay` replays a day under a policy (the engine, FIFO:
  :mod:`~telerad.simulation.fifo`);
* :mod:`~telerad.simulation.figures` turns runs into the figures and the report.

Pure: no I/O but the CSV files the trace module is given.
"""
