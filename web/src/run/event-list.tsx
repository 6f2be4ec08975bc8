/**
 * The run's rows in a virtualized list (@tanstack/react-virtual): only the
 * rows in view (plus a few) are in the DOM, each measured after it renders,
 * so 100,000 events scroll as smoothly as ten. While the reader is at the
 * bottom the list follows new rows; scrolling up stops following, "Follow"
 * (or End) resumes.
 */
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { EventRow } from "./event-row.tsx";
import type { TimelineItem } from "./timeline.ts";

/** Row kinds that are usually one line high. */
const ONE_LINE: ReadonlySet<TimelineItem["kind"]> = new Set(["log", "status", "usage", "permission"]);

/** How close to the bottom (px) still counts as "at the bottom". */
const BOTTOM_SLACK = 48;

export function EventList({ items, version }: { items: readonly TimelineItem[]; version: number }) {
  const scroller = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const virtualizer = useVirtualizer({
    count: items.length,
    getScrollElement: () => scroller.current,
    // Close estimates keep the list from jumping while rows are measured: one-line rows are ~27 px.
    estimateSize: (i) => (ONE_LINE.has(items[i]?.kind ?? "log") ? 27 : 72),
    overscan: 12,
    getItemKey: (i) => items[i]?.id ?? i,
  });

  useLayoutEffect(() => {
    if (follow && items.length > 0) virtualizer.scrollToIndex(items.length - 1, { align: "end" });
  }, [version, follow, items.length, virtualizer]);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const onScroll = () => setFollow(el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK);
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, []);

  const rows = virtualizer.getVirtualItems();
  return (
    <div className="events-wrap">
      <div
        ref={scroller}
        className="events"
        role="log"
        aria-label="Run events"
        aria-live="off"
        tabIndex={0}
        onKeyDown={(e) => {
          if (e.key === "End") setFollow(true);
        }}
      >
        <div className="events-inner" style={{ height: virtualizer.getTotalSize() }}>
          {rows.map((v) => {
            const item = items[v.index]!;
            return (
              <div key={v.key} data-index={v.index} ref={virtualizer.measureElement} className="vrow" style={{ transform: `translateY(${v.start}px)` }}>
                <EventRow item={item} />
              </div>
            );
          })}
        </div>
      </div>
      {!follow ? (
        <button type="button" className="follow" onClick={() => setFollow(true)}>
          Follow new events
        </button>
      ) : null}
    </div>
  );
}
