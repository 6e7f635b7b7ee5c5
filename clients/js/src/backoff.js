// backoff.js - reconnect delays: exponential backoff with full jitter.
//
// Attempt n (0, 1, 2, ...) waits a uniformly random time in
// [0, min(maxDelay, minDelay * 2^n)] ("full jitter", which spreads a crowd of
// clients that lost the same server over the whole window instead of having
// them come back in waves). reset() after a successful connection.

export class Backoff {
  /**
   * @param {{minDelay?: number, maxDelay?: number, random?: () => number}} opts
   *   delays in milliseconds; random defaults to Math.random (tests inject one)
   */
  constructor({ minDelay = 500, maxDelay = 20000, random = Math.random } = {}) {
    if (!(minDelay >= 0) || !(maxDelay >= minDelay)) {
      throw new RangeError(`bad backoff bounds: minDelay ${minDelay}, maxDelay ${maxDelay}`);
    }
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.random = random;
    this.attempt = 0;
  }

  /** The upper bound of the window of attempt n. */
  ceiling(n = this.attempt) {
    // 2^n overflows to Infinity past n = 1023; Math.min handles that.
    return Math.min(this.maxDelay, this.minDelay * Math.pow(2, n));
  }

  /** The delay before the next attempt, in ms; advances the attempt count. */
  next() {
    const d = Math.floor(this.random() * (this.ceiling(this.attempt) + 1));
    this.attempt++;
    return Math.min(d, this.maxDelay);
  }

  reset() {
    this.attempt = 0;
  }
}
