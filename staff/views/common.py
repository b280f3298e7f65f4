"""What every staff view shares: pagination and redirects that keep the list's filters."""

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.urls import reverse

from staff.forms import PAGE_SIZES

DEFAULT_PAGE_SIZE = 50


def page_size(request) -> int:
    try:
        size = int(request.GET.get("per_page", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


class CountedPaginator(Paginator):
    """A paginator told its count by a query the page runs anyway (no COUNT of its own)."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self._known_count = count

    @property
    def count(self) -> int:
        return self._known_count


class IdsFirst:
    """An ordered, filtered queryset read a page at a time by its ids first: the page's ids
    from the filters and the ordering alone, then only those rows, with their joins and
    prefetches, from `rows` (the same list unfiltered). A deep page of a long list (the
    1,000th of the queue) otherwise joins every row it skips, and a search would run its
    filters twice."""

    ordered = True

    def __init__(self, queryset, rows):
        self.queryset = queryset
        self.rows = rows

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list:
        ids = list(self.queryset.prefetch_related(None).values_list("pk", flat=True)[index])
        rows = {row.pk: row for row in self.rows.filter(pk__in=ids).order_by()}
        # A row that left the list between the two reads is left out.
        return [rows[pk] for pk in ids if pk in rows]


def paginate(
    request,
    queryset,
    *,
    param: str = "page",
    size: int | None = None,
    count: int | None = None,
    rows=None,
):
    """One page of an ordered queryset: a COUNT (unless `count` is known) and the page's
    rows, whatever its size (for the long lists, by their ids first, the rows read from
    `rows`: IdsFirst)."""
    size = size or page_size(request)
    if rows is not None:
        queryset = IdsFirst(queryset, rows)
    paginator = (
        Paginator(queryset, size)
        if count is None
        else CountedPaginator(queryset, size, count=count)
    )
    return paginator.get_page(request.GET.get(param))


def querystring_without(request, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def redirect_with_query(url_name: str, *args, query: str = "") -> object:
    url = reverse(url_name, args=args)
    return redirect(f"{url}?{query}" if query else url)


def encode(params: dict) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
