/**
 * Regular-expression matching with a time budget, for patterns a model chose (`grep`'s regex,
 * `glob`'s compiled pattern). V8's backtracking engine can take exponential time on a pattern such
 * as `(a+)+$`, and the native agent's tools run in the server's own event loop, so one such call
 * would stall every run and every API request. Each batch of matching runs in a `node:vm` context
 * with a timeout (V8 interrupts a running regex when it expires); the whole tool call shares one
 * budget.
 */
import vm from "node:vm";

/** The budget ran out: the pattern is too slow on this input. */
export class MatchBudgetExceeded extends Error {
  constructor(readonly budgetMs: number) {
    super(`the pattern took more than ${budgetMs} ms to match (nested quantifiers such as (a+)+ backtrack exponentially); simplify it`);
    this.name = "MatchBudgetExceeded";
  }
}

const SCRIPT = new vm.Script("(() => { const out = []; for (let i = 0; i < texts.length && out.length < max; i++) if (re.test(texts[i])) out.push(i); return out; })()");

/** Matches texts against one regex within a total time budget; see the module comment. */
export class BoundedMatcher {
  readonly #ctx: vm.Context;
  readonly #deadline: number;
  readonly #budgetMs: number;

  /**
   * @param re the pattern; a `g` or `y` flag is refused (their `lastIndex` would carry over between texts)
   * @param budgetMs total matching time for this matcher, ms
   * @throws TypeError for a `g`/`y` regex
   */
  constructor(re: RegExp, budgetMs: number) {
    if (re.global || re.sticky) throw new TypeError("BoundedMatcher: a g or y regex keeps state between texts");
    this.#ctx = vm.createContext({ re, texts: [] as string[], max: 0 });
    this.#budgetMs = budgetMs;
    this.#deadline = Date.now() + budgetMs;
  }

  /**
   * The indexes of the texts that match, in order, at most `max`.
   * @throws MatchBudgetExceeded when the matcher's budget is spent
   */
  matching(texts: readonly string[], max = Infinity): number[] {
    const left = this.#deadline - Date.now();
    if (left <= 0) throw new MatchBudgetExceeded(this.#budgetMs);
    this.#ctx.texts = texts;
    this.#ctx.max = max;
    try {
      return SCRIPT.runInContext(this.#ctx, { timeout: Math.max(1, Math.ceil(left)) }) as number[];
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_SCRIPT_EXECUTION_TIMEOUT") throw new MatchBudgetExceeded(this.#budgetMs);
      throw err;
    } finally {
      this.#ctx.texts = [];
    }
  }

  /** Whether one text matches. @throws MatchBudgetExceeded */
  test(text: string): boolean {
    return this.matching([text], 1).length === 1;
  }
}
