// The DuckHub guide's polling loop ("Polling for orders", example polling loop), as an
// integration written from the guide would run it: Node 20, built-in fetch, no packages. The
// guide leaves loadCursor, saveCursor and upsertOrderLocally to the reader; here they are the
// simplest ones that do what the guide says: the cursor in a file, each order deduped by
// id + updatedAt and appended as one CSV row with fs.appendFileSync (not fsynced: not durable).
// The bench (bench/run_e2e.sh) measures it next to ferry.
//
//   node bench/guide/duckhub_loop.js BASE_URL API_KEY CURSOR_FILE CSV_FILE [--once]
//
// CURSOR_FILE missing: start at $START_FROM, else now (as the guide does). --once: one poll (the
// backfill), print what it did, exit; without it, poll every 20 s as the guide does.
'use strict'
const fs = require('node:fs')

const [BASE, API_KEY, CURSOR_FILE, CSV_FILE] = process.argv.slice(2, 6)
if (!CSV_FILE) {
  console.error('usage: duckhub_loop.js BASE_URL API_KEY CURSOR_FILE CSV_FILE [--once]')
  process.exit(64)
}
const ONCE = process.argv.includes('--once')
const HEADERS = { Authorization: `Bearer ${API_KEY}` }

async function loadCursor() {
  if (fs.existsSync(CURSOR_FILE)) return fs.readFileSync(CURSOR_FILE, 'utf8').trim()
  return process.env.START_FROM || new Date().toISOString()
}

async function saveCursor(value) {
  fs.writeFileSync(CURSOR_FILE, value)
}

// One row per order, the columns of ferry's duckhub_order CSV layout, RFC 4180 quoting.
const seen = new Set()
const cell = (v) => {
  const s = v === undefined || v === null ? '' : String(v)
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}
const money = (minor) => (minor / 100).toFixed(2)

async function upsertOrderLocally(order) {
  const key = `${order.id}@${order.updatedAt}` // dedupe by order.id + updatedAt
  if (seen.has(key)) return
  seen.add(key)
  const row = [order.id, order.orderNumber, order.status, order.type, order.customerName,
    order.currency, money(order.subtotalAmount), money(order.deliveryFee),
    money(order.discountAmount), money(order.totalAmount), order.createdAt.slice(0, 10),
    order.updatedAt, order.confirmedAt, order.completedAt, (order.items || []).length]
  fs.appendFileSync(CSV_FILE, row.map(cell).join(',') + '\r\n')
}

async function main() {
  const BASE_URL = BASE
  let cursor = await loadCursor()

  // The guide's pollOnce, unchanged but for BASE and the returned count.
  async function pollOnce() {
    let page = 1
    let totalPages = 1
    let maxUpdatedAt = cursor
    let count = 0

    while (page <= totalPages) {
      const params = new URLSearchParams({
        updatedSince: cursor,
        limit: '100',
        page: String(page),
      })
      const response = await fetch(`${BASE_URL}/orders?${params}`, {
        headers: HEADERS,
      })
      if (!response.ok) throw new Error(`Poll failed: ${response.status}`)

      const { items, totalPages: tp } = await response.json()
      totalPages = tp

      for (const order of items) {
        await upsertOrderLocally(order) // dedupe by order.id + updatedAt
        if (order.updatedAt > maxUpdatedAt) maxUpdatedAt = order.updatedAt
        count += 1
      }
      page += 1
    }

    cursor = maxUpdatedAt
    await saveCursor(cursor)
    return { count, pages: page - 1 }
  }

  if (ONCE) {
    const start = process.hrtime.bigint()
    const { count, pages } = await pollOnce()
    const s = Number(process.hrtime.bigint() - start) / 1e9
    console.log(`guide loop: ${count} orders in ${pages} pages, ${s.toFixed(3)} s, ` +
      `${Math.round(count / s)} orders/s, ${seen.size} rows appended`)
    return
  }
  setInterval(() => pollOnce().catch(console.error), 20_000)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
