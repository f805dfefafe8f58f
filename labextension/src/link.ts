/**
 * One notebook's link to its kernel's ipysession: the `ipysession` comm, opened when the kernel
 * is ready (before any cell runs) and again after each restart.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { KernelMessage } from '@jupyterlab/services';
import { JSONObject, JSONValue } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { ILinkComm, openComm } from './comm';
import { INoticeMessage, SessionModel } from './state';

export const TARGET = 'ipysession';
const METADATA_KEY = 'ipysession';

export interface IReply extends JSONObject {
  status: string;
}

export class SessionLink {
  readonly model = new SessionModel();

  constructor(
    readonly context: ISessionContext,
    private readonly metadata: {
      get(): JSONValue | undefined;
      set(value: JSONObject): void;
    }
  ) {
    context.statusChanged.connect(this._onStatus, this);
    context.kernelChanged.connect(this._onKernelChanged, this);
    this._onStatus();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Each notice the kernel sends (the restore summary, key and file problems...). */
  get notices(): ISignal<this, INoticeMessage> {
    return this._notices;
  }

  /** The layout the kernel kept, once per page (set by the first subscribe reply). */
  get layoutFetched(): ISignal<this, JSONValue> {
    return this._layoutFetched;
  }

  dispose(): void {
    Signal.clearData(this);
    const comm = this._comm;
    this._comm = null;
    try {
      comm?.close();
    } catch (error) {
      // The kernel connection went first (the notebook closed with its kernel): there is no
      // kernel left to tell, and the rest of the panel's disposal must still run.
      console.debug('ipysession: comm already gone', error);
      comm?.dispose();
    }
  }

  /** A request on the comm; resolves with the kernel's reply (`status` ok or error). */
  request(data: JSONObject): Promise<IReply> {
    const comm = this._comm;
    if (!comm || this.model.phase !== 'ready') {
      return Promise.reject(new Error('ipysession is not connected to this kernel'));
    }
    const id = ++this._nextId;
    return new Promise<IReply>((resolve, reject) => {
      this._waiting.set(id, { resolve, reject });
      comm.send({ ...data, id });
    });
  }

  private _onKernelChanged(): void {
    this._closeComm();
    this.model.kernelChanged();
    this._changed.emit();
  }

  private _onStatus(): void {
    const status = this.context.kernelDisplayStatus;
    if (status === 'restarting' || status === 'autorestarting') {
      this._closeComm();
      this.model.kernelRestarting();
      this._changed.emit();
      return;
    }
    if (status === 'idle' && !this._comm && !this._askedThisKernel) {
      this._subscribe();
    }
  }

  private _closeComm(): void {
    this._askedThisKernel = false;
    if (this._comm) {
      // A restart or a new kernel ends every comm: ours is forgotten, never closed.
      this._comm.dispose();
      this._comm = null;
    }
    for (const waiting of this._waiting.values()) {
      waiting.reject(new Error('the kernel restarted'));
    }
    this._waiting.clear();
  }

  private _subscribe(): void {
    const kernel = this.context.session?.kernel;
    if (!kernel) {
      return;
    }
    this._askedThisKernel = true;
    let comm: ILinkComm;
    try {
      // On the notebook's own connection, even when its linked console took comm handling.
      comm = openComm(kernel, TARGET);
    } catch (error) {
      console.debug('ipysession: no comm', error);
      return;
    }
    this._comm = comm;
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => this._onMessage(msg.content.data);
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
        if (this.model.phase !== 'ready') {
          // Refused: this kernel has no ipysession. Quietly nothing to show.
          this.model.kernelAbsent();
          this._changed.emit();
        }
      }
    };
    const kept = this.metadata.get() as JSONObject | undefined;
    const request: JSONObject = { action: 'subscribe', id: ++this._nextId };
    if (kept && typeof kept === 'object') {
      request.session_id = kept.session_id ?? null;
      request.session = kept.session ?? null;
    }
    this._subscribeId = request.id as number;
    comm.open(request);
  }

  private _onMessage(data: JSONValue): void {
    const message = data as JSONObject;
    if (!message || typeof message !== 'object') {
      return;
    }
    if (message.id !== undefined && message.id === this._subscribeId) {
      this._subscribeId = null;
      if (message.status !== 'ok') {
        this.model.kernelAbsent();
        this._changed.emit();
        return;
      }
      this.model.apply(message.state);
      this._keepIdentity();
      if (!this._layoutSeen) {
        this._layoutSeen = true;
        if (message.layout !== null && message.layout !== undefined) {
          this._layoutFetched.emit(message.layout);
        }
      }
      this._changed.emit();
      return;
    }
    if (typeof message.id === 'number' && this._waiting.has(message.id)) {
      const waiting = this._waiting.get(message.id)!;
      this._waiting.delete(message.id);
      if (message.state) {
        this.model.apply(message.state);
        this._keepIdentity();
        this._changed.emit();
      }
      waiting.resolve(message as IReply);
      return;
    }
    const notice = this.model.apply(message);
    if (notice) {
      this._notices.emit(notice);
    } else {
      this._keepIdentity();
    }
    this._changed.emit();
  }

  /** The notebook's metadata keeps the session's id and name: renamed, it finds its session. */
  private _keepIdentity(): void {
    const state = this.model.state;
    if (!state || !state.session_id) {
      return;
    }
    const kept = this.metadata.get() as JSONObject | undefined;
    if (
      kept &&
      kept.session_id === state.session_id &&
      kept.session === state.session_full
    ) {
      return;
    }
    this.metadata.set({ session_id: state.session_id, session: state.session_full });
  }

  private _comm: ILinkComm | null = null;
  private _askedThisKernel = false;
  private _nextId = 0;
  private _subscribeId: number | null = null;
  private _layoutSeen = false;
  private _waiting = new Map<
    number,
    { resolve: (reply: IReply) => void; reject: (error: Error) => void }
  >();
  private _changed = new Signal<this, void>(this);
  private _notices = new Signal<this, INoticeMessage>(this);
  private _layoutFetched = new Signal<this, JSONValue>(this);
}

export { METADATA_KEY };
