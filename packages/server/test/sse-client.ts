/** A reader of GET /events for the tests: the records it got, and a wait for more. */
import http from 'node:http';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface SseRecord {
  id: string | null;
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read the shape
}

/** An open stream: its records so far, and a way to wait for more. */
export class SseClient {
  readonly records: SseRecord[] = [];
  status = 0;
  private buf = '';
  private req: http.ClientRequest | null = null;
  res: http.IncomingMessage | null = null;
  ended = false;
  body = '';

  static open(url: string, key: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const c = new SseClient();
    return new Promise((resolve, reject) => {
      c.req = http.get(url, { headers: { 'x-api-key': key, ...headers } }, (res) => {
        c.res = res;
        c.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          c.body += chunk;
          c.feed(chunk);
        });
        res.on('end', () => (c.ended = true));
        res.on('close', () => (c.ended = true));
        resolve(c);
      });
      c.req.on('error', reject);
    });
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    let i: number;
    while ((i = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      let id: string | null = null;
      let event = 'message';
      let data: string | null = null;
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (data !== null) this.records.push({ id, event, data: JSON.parse(data) });
    }
  }

  async until(done: (r: SseRecord[]) => boolean, ms = 5000): Promise<SseRecord[]> {
    const end = Date.now() + ms;
    while (!done(this.records)) {
      if (Date.now() > end) throw new Error(`stream: ${JSON.stringify(this.records)}`);
      await sleep(20);
    }
    return this.records;
  }

  close(): void {
    this.req?.destroy();
  }
}
