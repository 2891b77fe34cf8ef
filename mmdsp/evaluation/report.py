"""Printed tables of the evaluation tools: Markdown, aligned, so the output
reads in a terminal and pastes into docs/experiments.md unchanged."""
import math

__all__ = ['markdown_table', 'fmt']


def fmt(value, digits=2):
    """A number for a table cell: ``'—'`` for None / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '—'
    if isinstance(value, (int, )) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def markdown_table(header, rows):
    """A Markdown table with padded columns.

    Args:
        header (Sequence[str]): Column titles.
        rows (Sequence[Sequence]): Cells (strings, or numbers for
            :func:`fmt`).

    Returns:
        str: The table, one line per row.
    """
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else
                                           fmt(c) for c in row]
                                          for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) \
            + ' |'

    sep = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([line(cells[0]), sep] + [line(r) for r in cells[1:]])
