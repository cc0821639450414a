/** A binary min-heap. `dropLargest` is O(n) and only runs when the heap overflows its cap. */
export class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(a[i]!, a[parent]!) >= 0) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Removes and returns the largest item (a leaf): keeps the heap bounded. */
  dropLargest(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    let worst = a.length >> 1;
    for (let i = worst + 1; i < a.length; i++) if (this.compare(a[i]!, a[worst]!) > 0) worst = i;
    const dropped = a[worst];
    const last = a.pop()!;
    if (worst < a.length) {
      a[worst] = last;
      // A leaf replaced by the last leaf may need to move up.
      let i = worst;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (this.compare(a[i]!, a[parent]!) >= 0) break;
        [a[i], a[parent]] = [a[parent]!, a[i]!];
        i = parent;
      }
    }
    return dropped;
  }

  private siftDown(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.compare(a[l]!, a[m]!) < 0) m = l;
      if (r < a.length && this.compare(a[r]!, a[m]!) < 0) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
  }
}
