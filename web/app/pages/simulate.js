import { h } from "../dom.js";

export class SimulatePage {
  mount(root) {
    this.el = h("section", { className: "page" }, h("h1", {}, "simulate"), h("p", {}, "Coming next."));
    root.append(this.el);
  }

  unmount() {
    this.el?.remove();
  }
}
